"""Infinibook engine: books, library, Infini-attention, reading and the assistant. No Qt here."""
