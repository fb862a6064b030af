"""Small apps that run on a MediaLeg and prove the telephony core: echo and playback."""
