"""The chat models of ``trunkline serve``: built from each ``brain: llm`` spec's ``llm:``.

A spec names its model and, optionally, where and how to reach it::

    llm:
      model: gpt-4o-mini
      base_url: http://127.0.0.1:8000/v1   # any OpenAI-compatible server; default OpenAI
      api_key_env: ACME_OPENAI_KEY         # default OPENAI_API_KEY
      first_token_timeout_ms: 2000         # default 5000
      idle_timeout_ms: 2000                # default 5000

The spec loader already refused a malformed block (``file:line: field: message``). What
can only be known at start is reported, not fatal: a key variable that is not set, an
API that does not answer or refuses the key. The server starts anyway (a provider that
is down at start may come back; meanwhile the brain says its "trouble" sentence), with
a warning line and the provider marked down in ``/health`` until a request succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trunkline.agent.spec import AgentSpec, BrainKind
from trunkline.api.health import ProviderHealth
from trunkline.providers.openai_llm import OPENAI_BASE_URL, OpenAILLM
from trunkline.providers.retry import ProviderMetrics

__all__ = ["DEFAULT_KEY_ENV", "LlmSetup", "build_llms", "probe_llms"]

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


@dataclass
class LlmSetup:
    """One agent's chat model and what is already known to be wrong with it."""

    spec: AgentSpec
    llm: OpenAILLM
    problem: str | None = None


def build_llms(
    specs: Sequence[AgentSpec], metrics: ProviderMetrics, env: Mapping[str, str]
) -> list[LlmSetup | None]:
    """A chat model per ``brain: llm`` spec (None for the others), in the specs' order.

    The key comes from the spec's ``api_key_env``, else ``OPENAI_API_KEY``. A missing key
    is a problem when the spec named its variable or talks to OpenAI itself; a custom
    ``base_url`` without a key is a local server, which usually takes none.
    """
    out: list[LlmSetup | None] = []
    for spec in specs:
        if spec.brain is not BrainKind.LLM or spec.llm is None:
            out.append(None)
            continue
        conf = spec.llm
        key_env = conf.api_key_env or DEFAULT_KEY_ENV
        key = env.get(key_env) or None
        problem = None
        if key is None and (conf.api_key_env or not conf.base_url):
            problem = f"no API key: the environment variable {key_env} is not set"
        llm = OpenAILLM(
            model=conf.model,
            api_key=key,
            base_url=conf.base_url or OPENAI_BASE_URL,
            temperature=conf.temperature,
            label=f"llm:{spec.name}",
            first_token_timeout=_seconds(conf.first_token_timeout_ms, 5.0),
            idle_timeout=_seconds(conf.idle_timeout_ms, 5.0),
            metrics=metrics,
        )
        out.append(LlmSetup(spec, llm, problem))
    return out


async def probe_llms(setups: Sequence[LlmSetup | None], health: ProviderHealth) -> None:
    """Check every model at once; report each one's state to ``health`` and the log."""
    todo = [s for s in setups if s is not None]
    results = await asyncio.gather(*(_probe(s) for s in todo))
    for setup, problem in zip(todo, results, strict=True):
        label = setup.llm.label
        if problem is None:
            health.report(label, up=True)
            log.info("chat model %s (%s) is reachable", setup.llm.model, label)
        else:
            health.report(label, up=False, detail=problem)
            log.warning(
                "chat model %s of agent %s is down at start: %s; serving anyway, the "
                "agent apologises until it answers",
                setup.llm.model, setup.spec.name, problem,
            )  # fmt: skip


async def _probe(setup: LlmSetup) -> str | None:
    if setup.problem is not None:
        return setup.problem
    return await setup.llm.probe()


def _seconds(ms: int | None, default: float) -> float:
    return default if ms is None else ms / 1000
