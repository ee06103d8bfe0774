// shmbus.MessageLoan (a typed message under construction whose Data field is a writable buffer)
// and shmbus.load_schema (a type's schema from `capnp compile -o-`, to create typed topics
// from Python).
//
// Publisher.loan_message(fields, data_field, size) builds the message's other fields from a
// dict, as publish_dict does, then sizes the Data field in place: numpy writes a frame straight
// into the message a C++ Subscriber<T> reads, as frame_pub.cpp does in C++.
#include <capnp/dynamic.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <cstring>

#include "codec/message_codec.hpp"
#include "module.hpp"
#include "objects.hpp"
#include "shmbus/detail/chunk_message.hpp"
#include "typed.hpp"

namespace shmbus::python {
namespace {

struct MessageLoan {
  std::unique_ptr<detail::ChunkMessageBuilder> builder;  // null once published or discarded
  py::object publisher;
  Publisher* owner = nullptr;
  std::byte* data = nullptr;  // the Data field, in the loaned chunk
  std::size_t size = 0;
  int exports = 0;
  bool discard_pending = false;

  void finish() noexcept {
    builder.reset();  // an unpublished builder gives its chunks back
    data = nullptr;
    size = 0;
    if (owner) {
      --owner->open_loans;
      owner = nullptr;
    }
  }
  ~MessageLoan() { finish(); }
};

MessageLoan* message_loan_of(PyObject* obj) noexcept {
  try {
    return py::handle(obj).cast<MessageLoan*>();
  } catch (...) {
    return nullptr;
  }
}

int getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  MessageLoan* l = message_loan_of(obj);
  if (!l || !l->builder || l->discard_pending) {
    PyErr_SetString(PyExc_BufferError, "shmbus.MessageLoan: published or discarded, its chunk is no longer yours");
    view->obj = nullptr;
    return -1;
  }
  if (PyBuffer_FillInfo(view, obj, l->data, static_cast<Py_ssize_t>(l->size), /*readonly=*/0, flags) != 0) return -1;
  ++l->exports;
  return 0;
}

void releasebuffer(PyObject* obj, Py_buffer*) {
  MessageLoan* l = message_loan_of(obj);
  if (l && --l->exports == 0 && l->discard_pending) l->finish();
}

std::unique_ptr<MessageLoan> loan_message(py::object self, const py::object& fields, const std::string& data_field,
                                          std::size_t data_size) {
  Publisher& p = self.cast<Publisher&>();
  RawPublisher& raw = p.get();
  if (!p.codec) p.codec = codec_of(raw.topic().config());
  if (!p.codec) {
    raise_error(Errc::misuse, "loan_message: topic '" + raw.topic().name() + "' carries raw bytes (no recorded schema)");
  }
  KJ_IF_MAYBE (field, p.codec->schema().findFieldByName(data_field)) {
    if (field->getType().which() != capnp::schema::Type::DATA) {
      throw std::invalid_argument("loan_message: field '" + data_field + "' of " + p.codec->type_name() + " is not Data");
    }
  } else {
    throw std::invalid_argument("loan_message: " + p.codec->type_name() + " has no field '" + data_field + "'");
  }
  std::string text = py::module_::import("json").attr("dumps")(fields).cast<std::string>();
  // The first segment holds the whole message: the Data field is then one contiguous buffer.
  auto builder = std::make_unique<detail::ChunkMessageBuilder>(detail::core_of(raw), data_size + 4096);
  if (!builder->status().ok()) raise_error(builder->status().code(), raw.explain(builder->status().code(), data_size + 4096));
  auto l = std::make_unique<MessageLoan>();
  try {
    p.codec->encode(text, /*json=*/true, *builder);
    capnp::DynamicStruct::Builder root = builder->getRoot<capnp::DynamicStruct>(p.codec->schema());
    capnp::Data::Builder bytes = root.init(data_field, static_cast<unsigned>(data_size)).as<capnp::Data>();
    l->data = reinterpret_cast<std::byte*>(bytes.begin());
    l->size = bytes.size();
  } catch (const kj::Exception& e) {
    if (!builder->status().ok()) raise_error(builder->status().code(), "loan_message: " + std::string(e.getDescription().cStr()));
    throw std::invalid_argument("loan_message: " + p.codec->type_name() + ": " + e.getDescription().cStr());
  }
  l->builder = std::move(builder);
  l->publisher = self;
  l->owner = &p;
  ++p.open_loans;
  return l;
}

void publish_message(Publisher& p, MessageLoan& loan) {
  RawPublisher& raw = p.get();
  if (!loan.builder || loan.discard_pending) raise_error(Errc::misuse, "publish: the loan was already published or discarded");
  if (loan.owner != &p) raise_error(Errc::misuse, "publish: the loan was made by another publisher");
  if (loan.exports > 0) {
    raise_error(Errc::misuse, "publish: the loan still has " + std::to_string(loan.exports) +
                                  " buffer view(s) (memoryview/numpy array): drop them first");
  }
  Status st = loan.builder->publish();
  loan.finish();
  if (!st) raise_status(st.code(), raw.topic(), "publish");
}

// (type_id, schema bytes) of `type_name` from a serialized CodeGeneratorRequest.
py::tuple load_schema(const py::bytes& request, const std::string& type_name) {
  std::string text = request;
  if (text.empty() || text.size() % sizeof(capnp::word) != 0) {
    throw std::invalid_argument("load_schema: not a serialized CodeGeneratorRequest (capnp compile -o- output)");
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(text.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), text.data(), text.size());
  capnp::FlatArrayMessageReader reader(words);
  auto nodes = reader.getRoot<capnp::schema::CodeGeneratorRequest>().getNodes();
  std::uint64_t id = 0;
  for (auto node : nodes) {
    std::string name = node.getDisplayName().cStr();
    if (node.isStruct() && (name == type_name || name.ends_with(":" + type_name))) id = node.getId();
  }
  if (id == 0) throw std::invalid_argument("load_schema: no struct '" + type_name + "' in the request");
  capnp::MallocMessageBuilder out;
  auto copy = out.initRoot<capnp::schema::CodeGeneratorRequest>().initNodes(nodes.size());
  for (unsigned i = 0; i < nodes.size(); ++i) copy.setWithCaveats(i, nodes[i]);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(out);
  return py::make_tuple(id, py::bytes(flat.asChars().begin(), flat.asChars().size()));
}

}  // namespace

void bind_message_loan(py::module_& m) {
  py::class_<MessageLoan> cls(m, "MessageLoan", py::buffer_protocol(),
                              "A typed message being built in loaned chunks; its buffer is one Data field");
  cls.def("__len__", [](const MessageLoan& l) { return l.size; })
      .def_property_readonly("address", [](const MessageLoan& l) { return reinterpret_cast<std::uintptr_t>(l.data); })
      .def_property_readonly("valid", [](const MessageLoan& l) { return l.builder && !l.discard_pending; })
      .def("discard",
           [](MessageLoan& l) {
             if (l.exports > 0) l.discard_pending = true;
             else l.finish();
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](MessageLoan& l, const py::args&) {
        if (l.builder) {
          if (l.exports > 0) l.discard_pending = true;
          else l.finish();
        }
      });
  PyBufferProcs* procs = reinterpret_cast<PyTypeObject*>(cls.ptr())->tp_as_buffer;
  procs->bf_getbuffer = getbuffer;
  procs->bf_releasebuffer = releasebuffer;

  py::class_<Publisher>(m.attr("Publisher"))
      .def("loan_message", &loan_message, py::arg("fields"), py::arg("data_field"), py::arg("size"),
           "Typed topics: a message with `fields` set and Data field `data_field` of `size` bytes, "
           "whose buffer is that field in place")
      .def("publish", &publish_message, py::arg("loan"), "Publishes a MessageLoan; the loan is spent");

  m.def("load_schema", &load_schema, py::arg("request"), py::arg("type_name"),
        "(type_id, schema) of struct `type_name` from `capnp compile -o- FILE.capnp` output, for TopicConfig");
}

}  // namespace shmbus::python
