"""LLM providers: catalog entry -> CrewAI LLM, and the embedded llama.cpp model."""
