# syntax=docker/dockerfile:1
# OneChat Bridge: a static Go binary on a distroless, non-root base. The health check runs the
# binary itself (`bridge health` asks /livez), so the image needs no shell or curl.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bridge ./cmd/bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bridge /usr/local/bin/bridge
USER nonroot:nonroot
# The admin listener (/livez, /readyz, /metrics). It listens on every interface inside the
# container so Prometheus can scrape it; publish the port only to a trusted network.
ENV BRIDGE_ADMIN_ADDR=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/bridge", "health"]
ENTRYPOINT ["/usr/local/bin/bridge"]
CMD ["run"]
