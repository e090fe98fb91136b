"""Deploying a catalog model as a Hugging Face Inference Endpoint and managing it afterwards.

All the HTTP goes through huggingface_hub's HfApi (the optional extra `hub`), imported lazily:
`hub.py` builds the client (API bases from HF_ENDPOINT and AVATARGEN_ENDPOINTS_API) and maps its
errors, `plan.py` turns options into the calls to make (what --dry-run prints), `run.py` makes
them, `records.py` remembers which endpoint serves which model, `manage.py` reads and steers one.
"""
