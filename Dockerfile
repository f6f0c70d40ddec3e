# syntax=docker/dockerfile:1
# modelgate: a static binary on distroless, running as a non-root user.
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/modelgate/modelgate:0.1.0 .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/modelgate ./cmd/modelgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/modelgate /modelgate
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/modelgate"]
CMD ["run"]
