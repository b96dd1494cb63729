"""The baseline: a bare FastAPI app answering one JSON route."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    """The smallest useful JSON response."""
    return {"message": "hello"}
