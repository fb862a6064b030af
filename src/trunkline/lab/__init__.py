"""The pretest lab: synthetic callers that measure a voice agent from the caller's ear."""
