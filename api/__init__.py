"""The HTTP shell over `rag.Service`."""
