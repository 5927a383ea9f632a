"""Evaluations: scenarios (evals/scenarios) run through the real graph, tools and store, the model replayed from
fingerprinted cassettes (evals/cassettes), answering live, or facing a simulated customer; scored on the end state
(tau-bench) with diagnostics beside it; reported as JSON and Markdown and, with a LangSmith key, as experiments.

Only `cli` imports this package; `asistente demo` uses the replay half without the `evals` extra. See docs/evals.md.
"""
