"""Train masked shallow networks over a grid and check convergence bounds statistically."""
