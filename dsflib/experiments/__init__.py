"""The paper's experiments as sweep definitions (grids per profile) and run functions."""
