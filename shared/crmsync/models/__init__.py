"""Pydantic models at every boundary: jobs, API shapes, stored records."""
