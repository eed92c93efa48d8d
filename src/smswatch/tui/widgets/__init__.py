"""Panels of the live monitor."""
