"""Presentation: terminal tables (rich), live sweep view, compare output formats, reports."""
