"""Agents: the spec (YAML -> validated model), grammars, the flow engine and LLM brains.

Typical use by the runtime::

    spec = load_agent_spec("examples/acme/agent.yaml")      # AgentSpecError lists all issues
    async with ToolRunner() as tools:
        brain = FlowBrain(spec, BrainContext(tools=tools, variables={"crm": crm_url}))
        actions = brain.start()                             # greeting + first prompt
        listen = brain.listen_spec()                        # grammar, endpointing, DTMF
        actions = await brain.on_input(Speech("order status"))
        session = brain.snapshot()                          # checkpoint after each turn

A ``brain: llm`` spec runs on ``LlmBrain(spec, BrainContext(..., llm=OpenAILLM(...)))``.
"""

from trunkline.agent.brain import (
    Action,
    Brain,
    BrainContext,
    BrainEvent,
    Digits,
    EventKind,
    Hangup,
    Interrupted,
    ListenSpec,
    NoInput,
    Say,
    Speech,
    Transfer,
    UserInput,
)
from trunkline.agent.errors import AgentError, AgentSpecError, AgentUsageError, SpecIssue
from trunkline.agent.flow import FlowBrain
from trunkline.agent.grammar import GrammarMatcher, Match, StateGrammar, state_grammars
from trunkline.agent.llm_brain import LlmBrain
from trunkline.agent.spec import AgentSpec, BrainKind, DtmfSpec, SlotType
from trunkline.agent.spec_build import load_agent_spec, parse_agent_spec
from trunkline.agent.tools import ToolCaller, ToolOutcome, ToolRequest, ToolResult, ToolRunner

__all__ = [
    "Action",
    "AgentError",
    "AgentSpec",
    "AgentSpecError",
    "AgentUsageError",
    "Brain",
    "BrainContext",
    "BrainEvent",
    "BrainKind",
    "Digits",
    "DtmfSpec",
    "EventKind",
    "FlowBrain",
    "GrammarMatcher",
    "Hangup",
    "Interrupted",
    "ListenSpec",
    "LlmBrain",
    "Match",
    "NoInput",
    "Say",
    "SlotType",
    "SpecIssue",
    "Speech",
    "StateGrammar",
    "ToolCaller",
    "ToolOutcome",
    "ToolRequest",
    "ToolResult",
    "ToolRunner",
    "Transfer",
    "UserInput",
    "load_agent_spec",
    "parse_agent_spec",
    "state_grammars",
]
