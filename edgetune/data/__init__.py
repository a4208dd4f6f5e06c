"""Personalization data: reading text,label files and turning them into fixed-shape batches."""
