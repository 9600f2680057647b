"""Predicting memory (pure): the caches and states llama.cpp creates for a model and settings.

One module per kind of memory, each citing the llama.cpp file it follows; ``create`` is
``llama_model::create_memory``'s dispatch over them.
"""
