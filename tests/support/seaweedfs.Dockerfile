# The tests' stand-in for chrislusf/seaweedfs (compose.yaml's s3 service, the chart's s3store; no registry answers here): the same `weed`
# at the same path (/usr/bin/weed, built from the module proxy by scripts/test-tools.sh at the pinned commit), /data
# owned by uid 1000 (`seaweed`) and curl for compose.yaml's healthcheck, on the Debian base of scripts/images.sh.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --gid 1000 seaweed \
 && useradd --uid 1000 --gid 1000 --create-home seaweed \
 && mkdir -p /data \
 && chown seaweed:seaweed /data
COPY weed /usr/bin/weed
VOLUME /data
WORKDIR /data
ENTRYPOINT ["/usr/bin/weed"]
CMD ["mini", "-dir=/data"]
