"""The LangGraph state machine that runs each conversation: state, graph, prompts, model and memory factories."""
