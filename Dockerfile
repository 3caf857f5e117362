# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md signaalpoort.py ./
COPY keys ./keys
COPY gateway ./gateway
COPY adapters ./adapters
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/signaalpoort signaalpoort
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER signaalpoort
WORKDIR /var/lib/signaalpoort
ENV SIGNAALPOORT_HOME=/var/lib/signaalpoort/home
ENTRYPOINT ["signaalpoort"]
CMD ["--help"]
