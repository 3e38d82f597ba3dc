"""The pure heart of the product: what an export is, with no I/O.

Modules here import only the standard library, pydantic and bson, so the workflow, the activities
and the API share one definition of requests, state, validation, chunk planning and encoding.
"""
