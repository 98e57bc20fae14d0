"""placeholder"""


def register(ctx) -> None:
    pass
