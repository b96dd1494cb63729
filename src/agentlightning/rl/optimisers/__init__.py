"""Agent optimisers: ``apo`` (prompt), ``bandit`` (variants), ``grpo`` (LoRA fine-tuning)."""
