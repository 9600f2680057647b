"""Reading a model: the GGUF header, ggml types, and hyper-parameters as llama.cpp derives them (pure)."""
