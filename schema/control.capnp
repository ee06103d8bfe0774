# shmbus control protocol: Cap'n Proto RPC between a client process and shmbusd over the bus's
# Unix stream socket. Slow path only: the daemon never sees a message payload.
#
# Transport: capnp::TwoPartyVatNetwork over the socket, with fd passing enabled
# (maxFdsPerMessage). The daemon accepts at most one fd per incoming message, and only
# Bus.adoptRegion has a use for it; any other fd a client sends is closed unread.
#
# Identity: the daemon authorises per connection with SO_PEERCRED (uid, gid, pid, frozen at
# connect) and SO_PEERGROUPS; nothing in these messages claims an identity.
#
# Compatibility: add fields and methods only at the end, never renumber. A change in meaning
# bumps `protocolVersion`; hello() reports both sides' versions and a daemon refuses a client
# whose major version it does not speak.
@0xb9cf8acc184115e1;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shmbus::control");

# 2: typed refusals ("[code] message", RefusalCode), openTopic.mustExist, the create right.
const protocolVersion :UInt32 = 2;

enum Role {
  publisher @0;
  subscriber @1;
}

# Why the daemon refused a request. Cap'n Proto 0.9's RPC carries only an exception's type and
# text, so a refusal travels as the exception text "[<enumerant name>] <message>";
# bus/control/wire.* is the one place that writes and reads that form (wire::refusal /
# wire::read_refusal), and the client maps the code to a shmbus::Errc, keeping the message.
enum RefusalCode {
  unspecified @0;            # an exception without the form (a daemon bug, or an older daemon)
  accessDenied @1;           # the access rules refused; the message names rule, right and uid
  noSuchTopic @2;            # openTopic(mustExist = true), registerPool, getPool, registerSlot
  badRequest @3;             # malformed or out-of-order request (e.g. a slot never granted)
  existsWithOtherConfig @4;  # the topic exists with another type id, or another region
  invalidConfig @5;          # the topic could not be created with this configuration
  rateLimited @6;            # over the connection's request budget
  unsupportedVersion @7;     # hello() with a protocol version this daemon does not speak
}

enum Policy {
  unset @0;          # the daemon's default
  block @1;
  dropOldest @2;
  failPublish @3;
}

enum Backing {
  unset @0;          # the daemon's default
  anonymous @1;      # sealed memfd, shared by fd passing only
  file @2;           # file in the bus's region directory; re-adopted by a restarted daemon
}

struct SizeClass {
  chunkSize @0 :UInt64;
  count @1 :UInt32;
}

# A topic's configuration, mirroring shmbus::TopicConfig (include/shmbus/config.hpp). In a
# request every field set to 0 / empty / unset means "the daemon's default"; the operator's
# per-topic settings in the daemon's config file win over what the client asks for. In a
# reply it is the configuration the region was actually created with.
struct TopicConfig {
  name @0 :Text;
  sizeClasses @1 :List(SizeClass);
  queueDepth @2 :UInt32;
  historyDepth @3 :UInt32;
  policy @4 :Policy;
  blockTimeoutNs @5 :UInt64;
  maxPublishers @6 :UInt32;
  maxSubscribers @7 :UInt32;
  maxLoansPerPublisher @8 :UInt32;
  maxHeldPerSubscriber @9 :UInt32;
  maxSegments @10 :UInt32;
  maxMessageSize @11 :UInt64;
  typeId @12 :UInt64;          # Cap'n Proto struct id of the message type; 0 = raw bytes
  backing @13 :Backing;
  stampPublishTime @14 :Bool;
}

# One publisher or subscriber slot of a topic region, as RawPublisher::slot() /
# RawSubscriber::slot() report it, with the slot's registration generation read from the
# region right after registering. The daemon reclaims exactly this (slot, generation) when
# the registering connection closes, so a slot freed and reused meanwhile is left alone.
struct SlotRef {
  topic @0 :Text;
  role @1 :Role;
  slot @2 :UInt32;
  generation @3 :UInt64;
}

# A topic's shared region. The region's file descriptor travels with this capability
# (Capability::Server::getFd() on the serving side, Capability::Client::getFd() on the
# receiving side); map it with shmbus::Topic::open_fd().
interface Region {
  describe @0 () -> (topic :Text, size :UInt64, backing :Backing, path :Text);
}

# A publisher's payload pool (a sealed memfd, read-only for everyone but its creator); the fd
# travels with this capability like a Region's.
interface PayloadPool {
  describe @0 () -> (topic :Text, pool :UInt32, generation :UInt32);
}

struct ClassUsage {
  chunkSize @0 :UInt64;
  total @1 :UInt32;
  free @2 :UInt32;
  inRing @3 :UInt32;
  loaned @4 :UInt32;
  held @5 :UInt32;
}

struct SlotInfo {
  role @0 :Role;
  slot @1 :UInt32;
  pid @2 :Int32;            # as the slot's owner recorded it in the region
  messages @3 :UInt64;      # published, or taken
  lost @4 :UInt64;
  backlog @5 :UInt64;
  chunksHeld @6 :UInt32;
  clientId @7 :UInt64;      # connection that registered it; 0 = not registered with this daemon
}

struct TopicInfo {
  config @0 :TopicConfig;
  typeSchema @1 :Data;      # as given to openTopic (see Bus.openTopic), empty if none
  backing @2 :Backing;
  path @3 :Text;            # region file, empty for anonymous regions
  regionSize @4 :UInt64;
  published @5 :UInt64;     # sequence of the next message
  classes @6 :List(ClassUsage);
  slots @7 :List(SlotInfo);
  creatorUid @8 :UInt32;
  adopted @9 :Bool;         # taken over from a previous daemon (file) or handed back by a client
  revoked @10 :Bool;        # the region's file was opened for writing or truncated by another
                            # process: clients get region_lost, the file was renamed aside, and a
                            # new openTopic creates a fresh region (path is the renamed file)
  leased @11 :Bool;         # file-backed: the daemon holds its write lease now (off for a while
                            # after a read-only opener, or while a previous daemon's clients share
                            # the file; re-armed by the daemon's sweep)
}

struct ClientInfo {
  id @0 :UInt64;
  pid @1 :Int32;            # from SO_PEERCRED at connect; 0 if in another pid namespace
  uid @2 :UInt32;
  gid @3 :UInt32;
  name @4 :Text;            # as the client said in hello(); informational only
  connectedForMs @5 :UInt64;
  registrations @6 :List(SlotRef);
}

struct BusStatus {
  busName @0 :Text;
  daemonPid @1 :Int32;
  daemonUid @2 :UInt32;
  protocolVersion @3 :UInt32;
  epoch @4 :UInt64;         # daemon start, seconds since the Unix epoch
  uptimeMs @5 :UInt64;
  socketPath @6 :Text;
  regionDir @7 :Text;
  topics @8 :UInt32;
  clients @9 :UInt32;
  rulesSource @10 :Text;    # config file the access rules came from, or "built-in default"
}

interface Bus {
  # First call of every connection. A connection that makes no call within the daemon's
  # handshake timeout is closed.
  hello @0 (clientName :Text, protocolVersion :UInt32)
        -> (busName :Text, protocolVersion :UInt32, epoch :UInt64);

  # Opens topic `config.name`, creating its region if the bus has none yet. `role` is checked
  # against the access rules (an error names the rule that refused); creating the topic also
  # needs the `create` right. With `mustExist`, a topic the bus does not have is refused
  # (noSuchTopic) instead of created (tools that only look at existing topics). `typeSchema`: optional
  # serialized Cap'n Proto message whose root is a schema.capnp CodeGeneratorRequest holding
  # the nodes of the message type and its dependencies (only `nodes` is used); recorded in the
  # registry by the first opener that gives one, for tools that decode messages.
  openTopic @1 (config :TopicConfig, role :Role, typeSchema :Data, mustExist :Bool)
            -> (region :Region, config :TopicConfig);

  # Records that this connection owns a publisher/subscriber slot. The role must have been
  # granted by openTopic on this connection, and the slot must be active with that generation.
  registerSlot @2 (slot :SlotRef);
  # Forgets a registration (the slot was released normally, or the client takes over its
  # clean-up); never touches the region.
  unregisterSlot @3 (slot :SlotRef);

  listTopics @4 () -> (topics :List(TopicInfo));
  status @5 () -> (status :BusStatus);
  clients @6 () -> (clients :List(ClientInfo));

  # After a daemon restart: a client hands back an anonymous region the new daemon does not
  # know (the fd travels with `region`), with its registrations. Requires publish rights on
  # the topic named in the region's header, and the create right when it becomes a new topic
  # of this bus (an anonymous region). A topic the daemon already has is not replaced.
  adoptRegion @7 (region :Region, slots :List(SlotRef)) -> (region :Region);

  # A publisher hands the daemon the memfd of its payload pool (pool index = its publisher
  # slot, anonymous regions only), so that subscribers that cannot open it through /proc (other
  # users, or after the publisher exited) still read its messages. Requires publish rights; the
  # fd must be the memfd the region's pool slot names (inode, generation), sealed read-only.
  registerPool @8 (topic :Text, pool :UInt32, generation :UInt32, memfd :PayloadPool);
  # A subscriber asks for a pool it cannot open itself. Requires subscribe or publish rights.
  getPool @9 (topic :Text, pool :UInt32, generation :UInt32) -> (memfd :PayloadPool);

  # Durable topics (docs/durable.md, "Under the daemon"): the log `name` declared in the
  # daemon's [[durable]] tables, for `role` (publisher = append, subscriber = read), checked
  # against the access rules like a topic of that name. The reply says where the log lives and
  # how to append to it; the client opens the files itself (no daemon on the data path).
  # Refused: accessDenied (naming the rule), noSuchTopic (no such declared log).
  openDurable @10 (name :Text, role :Role) -> (log :DurableLog);

  # ---- Request/response services (types at the end of this file) ----
  # Opens service `config.name`, creating its region and topics if the bus has none yet.
  # `role` is checked against the access rules' `call` / `serve` lists, creating against
  # `create` (or `serve`); a refusal names the rule. `requestSchema` / `responseSchema`:
  # serialized schema nodes of the request and response types (as openTopic's typeSchema),
  # recorded in the topics' regions at creation, so tools decode calls. With `mustExist`, a
  # service the bus does not have is refused (noSuchTopic) instead of created. The client
  # then opens the two topics with openTopic(mustExist) in the roles its service role implies.
  openService @11 (config :ServiceConfig, role :ServiceRole, requestSchema :Data, responseSchema :Data,
                   mustExist :Bool) -> (region :ServiceRegion, config :ServiceConfig);
  # The services this peer may call or serve, with their rows as the daemon judges them.
  listServices @12 () -> (services :List(ServiceInfo));
}

enum FlushMode {
  none @0;
  everyN @1;
  interval @2;
  eachPublish @3;
}

# A durable log as the daemon declares it (shmbusd's [[durable]] table).
struct DurableLog {
  name @0 :Text;
  directory @1 :Text;       # the segments are in directory/name, as the daemon's mount namespace sees it
  segmentSize @2 :UInt64;
  flushMode @3 :FlushMode;
  flushEveryN @4 :UInt32;
  flushIntervalMs @5 :UInt64;
  maxAgeS @6 :UInt64;       # retention, applied by the daemon; 0 = no limit by it
  maxBytes @7 :UInt64;
  maxSegments @8 :UInt64;
  exclusiveAppender @9 :Bool;  # the [[durable]] table's exclusive_appender (DurableConfig's)
}

# ---- Request/response services (docs/services.md) ----
# A service is its service region plus two ordinary topics, "service/NAME/request" and
# "service/NAME/response". openService creates or opens the region and both topics; the
# client then opens the two topics with openTopic (mustExist) in the roles its service role
# implies, so pools, registrations and hand-back after a restart are the topics' own.

enum ServiceRole {
  call @0;           # publishes requests, takes responses
  serve @1;          # takes requests, publishes responses
}

# Mirrors shmbus::ServiceConfig (include/shmbus/service.hpp); 0 / empty / unset = the
# library's default. In a reply: what the service was created with.
struct ServiceConfig {
  name @0 :Text;
  requestClasses @1 :List(SizeClass);
  responseClasses @2 :List(SizeClass);
  requestQueueDepth @3 :UInt32;
  responseQueueDepth @4 :UInt32;
  requestPolicy @5 :Policy;
  responsePolicy @6 :Policy;
  blockTimeoutNs @7 :UInt64;
  maxServers @8 :UInt32;
  maxClients @9 :UInt32;
  maxCallsPerClient @10 :UInt32;
  requestTypeId @11 :UInt64;   # Cap'n Proto struct ids; 0 = raw bytes
  responseTypeId @12 :UInt64;
  backing @13 :Backing;
}

# A service region; its fd travels with the capability like a Region's (map it with
# shmbus::Service::open_fds together with the two topics' fds).
interface ServiceRegion {
  describe @0 () -> (service :Text, size :UInt64, backing :Backing, path :Text);
}

struct ServiceRow {
  id @0 :UInt32;             # server or client row
  pid @1 :Int32;             # as the row's owner recorded it
  alive @2 :Bool;            # the daemon's judgement (/proc: start time, not a zombie)
  served @3 :UInt64;         # servers: requests claimed
  callsInFlight @4 :UInt32;  # clients
}

struct ServiceInfo {
  config @0 :ServiceConfig;
  requestSchema @1 :Data;    # serialized schema nodes (as Bus.openTopic's typeSchema); empty = raw
  responseSchema @2 :Data;
  servers @3 :List(ServiceRow);
  clients @4 :List(ServiceRow);
  requestsPublished @5 :UInt64;
  responsesPublished @6 :UInt64;
  path @7 :Text;             # region file; empty for an anonymous service
}
