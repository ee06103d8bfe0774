#include "metrics_endpoint.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "shmbus/error.hpp"
#include "shmbus/metrics.hpp"

namespace shmbusd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Handlers hold a plain `this`: they run only on the thread, which the destructor stops and
// joins before the Impl (and its io_context, with every pending handler) goes.
struct MetricsEndpoint::Impl {
  explicit Impl(Limits l) : limits(l) {}

  Limits limits;
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::size_t open_connections = 0;  // endpoint thread only
  std::mutex topics_mutex;
  std::vector<shmbus::Topic> topics;  // under topics_mutex
  std::thread thread;

  std::string body() {
    std::vector<shmbus::Topic> now;
    {
      std::lock_guard lock(topics_mutex);
      now = topics;
    }
    std::vector<shmbus::TopicMetrics> m;
    for (const shmbus::Topic& t : now) {
      if (t.revoked()) continue;
      try {
        m.push_back(shmbus::read_metrics(t));
      } catch (const std::exception& e) {  // one topic's trouble is not the others'
        spdlog::warn("metrics: topic '{}': {}", t.name(), e.what());
      }
    }
    return shmbus::prometheus_text(m);
  }

  void listen(const asio::ip::address& address, std::uint16_t port) {
    auto a = std::make_unique<tcp::acceptor>(io);
    tcp::endpoint ep(address, port);
    boost::system::error_code ec;
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6()) a->set_option(asio::ip::v6_only(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      if (address.is_v6() && (ec == asio::error::address_family_not_supported || ec == boost::system::errc::address_not_available)) {
        spdlog::info("metrics: no IPv6 loopback here ({}), serving 127.0.0.1 only", ec.message());
        return;
      }
      throw std::runtime_error("metrics endpoint: cannot listen on " + address.to_string() + " port " +
                               std::to_string(port) + ": " + ec.message());
    }
    acceptors.push_back(std::move(a));
  }

  void accept(tcp::acceptor& a) {
    a.async_accept([self = this, &a](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (self->open_connections >= self->limits.max_connections) {
          socket.close();  // over the bound: refused at once, the others keep their turn
        } else {
          self->serve(std::move(socket));
        }
      }
      self->accept(a);
    });
  }

  struct Session {
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    http::response<http::string_body> response;
    explicit Session(tcp::socket s, std::size_t max_bytes) : stream(std::move(s)), buffer(max_bytes) {
      parser.header_limit(static_cast<std::uint32_t>(max_bytes));
      parser.body_limit(max_bytes);
    }
  };

  void serve(tcp::socket socket) {
    ++open_connections;
    auto s = std::make_shared<Session>(std::move(socket), limits.max_request_bytes);
    s->stream.expires_after(limits.timeout);
    http::async_read(s->stream, s->buffer, s->parser, [self = this, s](beast::error_code ec, std::size_t) {
      if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::operation_aborted) {
        self->finish(*s);
        return;
      }
      if (ec) {
        self->respond(s, http::status::bad_request, "bad request: " + ec.message() + "\n", 11);
        return;
      }
      const auto& req = s->parser.get();
      if (req.target() != "/metrics") {
        self->respond(s, http::status::not_found, "not found: only /metrics is served\n", req.version());
      } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
        self->respond(s, http::status::method_not_allowed, "method not allowed: use GET\n", req.version());
      } else {
        self->respond(s, http::status::ok, self->body(), req.version(), req.method() == http::verb::head);
      }
    });
  }

  void respond(const std::shared_ptr<Session>& s, http::status status, std::string text, unsigned version, bool head = false) {
    auto& r = s->response;
    r.version(version);
    r.result(status);
    r.set(http::field::server, "shmbusd");
    r.set(http::field::content_type, status == http::status::ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
    r.keep_alive(false);
    r.body() = std::move(text);
    r.prepare_payload();
    if (head) r.body().clear();  // Content-Length stays that of the GET
    http::async_write(s->stream, r, [self = this, s](beast::error_code, std::size_t) { self->finish(*s); });
  }

  void finish(Session& s) {
    beast::error_code ignored;
    s.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    s.stream.close();
    --open_connections;
  }
};

MetricsEndpoint::MetricsEndpoint(std::uint16_t port, Limits limits) : impl_(std::make_unique<Impl>(limits)) {
  impl_->listen(asio::ip::address_v4::loopback(), port);
  impl_->listen(asio::ip::address_v6::loopback(), port);
  for (auto& a : impl_->acceptors) impl_->accept(*a);
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  spdlog::info("metrics: serving http://127.0.0.1:{}/metrics (loopback only)", port);
}

MetricsEndpoint::~MetricsEndpoint() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void MetricsEndpoint::set_topics(std::vector<shmbus::Topic> topics) {
  std::lock_guard lock(impl_->topics_mutex);
  impl_->topics = std::move(topics);
}

}  // namespace shmbusd
