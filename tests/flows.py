"""Workflow YAML the backend tests share: two steps on the scripted catalog's agents.

``gather`` (fake_researcher) hands its answer to ``draft`` (fake_writer); the upper-case
first words are what the tests' scripted LLM rules match. One copy, so the tests of every
backend run the same workflow and a change to the workflow format is made once.
"""

GATHER_DRAFT_FLOW = """\
steps:
  - id: gather
    agent_provider: fake_researcher
    description: "GATHER facts about {topic}"
  - id: draft
    agent_provider: fake_writer
    description: "DRAFT a text about {topic}"
"""
