// Client::open_durable_appender / open_durable_reader: ask the daemon for the log (access
// check, where it lives, its flush policy), then open its files directly (durable_client.hpp).
#include "shmbus/client.hpp"

namespace shmbus {

DurableReader open_durable_reader_at(const std::filesystem::path& directory, const std::string& topic,
                                     const DurableStart& from) {
  switch (from.kind) {
    case DurableStart::Kind::sequence: return DurableReader::at_sequence(directory, topic, from.value);
    case DurableStart::Kind::time: return DurableReader::at_time(directory, topic, from.value);
    case DurableStart::Kind::named: return DurableReader::named(directory, topic, from.name);
    case DurableStart::Kind::oldest: break;
  }
  return DurableReader::oldest(directory, topic);
}

std::unique_ptr<DurableAppender> Client::open_durable_appender(const std::string& name) {
  DurableLogInfo log = durable_log(name, Role::publisher);
  DurableConfig c;
  c.directory = log.directory;
  c.topic = log.name;
  c.segment_size = log.segment_size;
  c.flush = log.flush;
  c.exclusive_appender = log.exclusive_appender;
  return std::make_unique<DurableAppender>(c);
}

DurableReader Client::open_durable_reader(const std::string& name, const DurableStart& from) {
  DurableLogInfo log = durable_log(name, Role::subscriber);
  return open_durable_reader_at(log.directory, log.name, from);
}

}  // namespace shmbus
