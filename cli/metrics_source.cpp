#include "metrics_source.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "shmbus/error.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {

MetricsSource::MetricsSource(std::vector<std::string> topics, std::string dir, const GlobalOptions& global)
    : topics_(std::move(topics)), dir_(std::move(dir)), global_(global) {
  if (!dir_.empty() && !std::filesystem::is_directory(dir_)) {
    throw Error(Errc::invalid_config, "--dir " + dir_ + ": not a directory");
  }
}

Topic& MetricsSource::topic_for(const std::string& key, const std::string& arg) {
  auto it = opened_.find(key);
  if (it != opened_.end() && !it->second.revoked()) return it->second;
  if (it != opened_.end()) opened_.erase(it);  // revoked: the daemon serves a fresh region now
  Topic topic = [&] {
    if (!dir_.empty()) return Topic::inspect_file(arg);
    OpenedTopic o = inspect_topic(arg, global_);
    if (o.client && !client_) client_ = std::move(o.client);  // keep one connection open
    return o.topic;
  }();
  return opened_.emplace(key, std::move(topic)).first->second;
}

std::vector<TopicMetrics> MetricsSource::read(std::vector<std::string>& errors) {
  std::vector<std::string> wanted = topics_;
  if (wanted.empty() && !dir_.empty()) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
      if (entry.path().extension() == ".shmbus") wanted.push_back(entry.path().string());
    }
    if (ec) throw Error(Errc::system_error, "--dir " + dir_ + ": " + ec.message());
    std::sort(wanted.begin(), wanted.end());
  } else if (wanted.empty()) {
    if (!client_) client_ = connect(global_);
    for (const TopicListing& t : client_->list_topics()) {
      if (!t.revoked) wanted.push_back(t.config.name);
    }
  }
  std::vector<TopicMetrics> out;
  for (const std::string& arg : wanted) {
    try {
      out.push_back(read_metrics(topic_for(arg, arg)));
    } catch (const Error& e) {
      errors.push_back(arg + ": " + e.what());
      opened_.erase(arg);
    }
  }
  return out;
}

}  // namespace shmbus::cli
