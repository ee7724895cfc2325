#pragma once
// The process's Prometheus registry and the HTTP request metrics. Modules add
// their own families to registry().
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace feuille::http {

class Metrics {
 public:
  Metrics();
  prometheus::Registry& registry() { return *registry_; }

  // One finished request: counted by route class and status, timed by class.
  // The class string must outlive the registry (it is keyed by address: the
  // router's routes own theirs).
  void observe_request(const std::string& route_class, unsigned status, double seconds);
  void connection_opened() { connections_->Increment(); }
  void connection_closed() { connections_->Decrement(); }

  // Prometheus text exposition of every family.
  std::string serialize() const;

  // Buckets for latency histograms (seconds), shared by modules.
  static prometheus::Histogram::BucketBoundaries latency_buckets();

 private:
  struct PerClass {
    prometheus::Histogram* duration = nullptr;
    std::unordered_map<unsigned, prometheus::Counter*> by_status;
  };
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* durations_;
  prometheus::Gauge* connections_;
  std::unordered_map<const std::string*, PerClass> classes_;
};

}  // namespace feuille::http
