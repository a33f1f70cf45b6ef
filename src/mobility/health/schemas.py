from pydantic import BaseModel


class HealthRead(BaseModel):
    status: str
    database: str
    revision: str | None
