"""Backends that turn one GenerationRequest into one image (see base.py for the protocol)."""
