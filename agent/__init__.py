"""The LangGraph state machine that runs each customer's conversation."""
