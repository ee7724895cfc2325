#include "http/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace feuille::http {

prometheus::Histogram::BucketBoundaries Metrics::latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("feuille_http_requests_total")
                   .Help("HTTP requests answered by feuilled, by route class and status")
                   .Register(*registry_);
  durations_ = &prometheus::BuildHistogram()
                    .Name("feuille_http_request_duration_seconds")
                    .Help("Time from request header to the end of the response, by route class")
                    .Register(*registry_);
  connections_ = &prometheus::BuildGauge()
                      .Name("feuille_http_open_connections")
                      .Help("Client connections open")
                      .Register(*registry_)
                      .Add({});
  prometheus::BuildGauge()
      .Name("feuille_build_info")
      .Help("Version and commit of this feuilled")
      .Register(*registry_)
      .Add({{"version", FEUILLE_VERSION}, {"commit", FEUILLE_COMMIT}})
      .Set(1);
}

void Metrics::observe_request(const std::string& route_class, unsigned status, double seconds) {
  auto& pc = classes_[&route_class];
  if (!pc.duration) pc.duration = &durations_->Add({{"route", route_class}}, latency_buckets());
  auto& counter = pc.by_status[status];
  if (!counter) counter = &requests_->Add({{"route", route_class}, {"code", std::to_string(status)}});
  counter->Increment();
  pc.duration->Observe(seconds);
}

std::string Metrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace feuille::http
