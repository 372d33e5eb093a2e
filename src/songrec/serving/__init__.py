"""The HTTP API and the web page: the champion model served to programs and to people.

server.run_server starts uvicorn on app.create_app; docs/serving.md documents it.
"""
