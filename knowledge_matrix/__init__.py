"""The knowledge matrix: a question/answer spreadsheet validated, indexed (FAISS) and published; retrieval, the
off-topic guard and the GPT fallback (`llm/`); `python -m knowledge_matrix`.

Floor 1: imports only `core`.
"""
