"""The booking domain: the calendar protocol, the local calendar, availability and the rules checked before any
change (which service, which slot, whose appointment). No LangChain here: the tools put it in front of the model."""
