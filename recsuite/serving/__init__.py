"""Serving: nearest-neighbour retrieval (faiss), compressed encoders (int8), the HTTP service (FastAPI)."""
