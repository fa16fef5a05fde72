"""Think stage: thinker protocol, answer parser and thinker implementations."""
