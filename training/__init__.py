"""dkt_training: LoRA fine-tuning of DKT (kept in ./training, installed as dkt_training)."""
