"""The server half (optional extra `serve`): diffusers pipelines, the Inference Endpoint handler,
`avatargen serve`, the in-process local backend and tiny random-weight test models."""
