"""Learned low-level controllers (Diffusion Policy, later TD-MPC2 and DreamerV3) and the OSC baseline."""
