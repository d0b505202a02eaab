"""Checks that read the repository: fly.toml, Dockerfile, Next.js config, env catalog."""
