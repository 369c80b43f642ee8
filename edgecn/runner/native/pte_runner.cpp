// edgecn-pte-runner: runs a .pte program's "forward" with ExecuTorch's C++ runtime, without torch.
//
// Built against the C++ libraries and headers that the executorch wheel ships (see build.py in this
// folder), and driven by edgecn's Python runner (edgecn/runner/pte_native.py), which does the
// measuring, the real-time pacing and the scoring. This program only loads, feeds and times.
//
// Usage: edgecn-pte-runner MODEL.pte [--threads N] [--etdump OUT.etdp]
//
// With --etdump, ExecuTorch's event tracer records every operator and delegate call, and the
// trace is written to OUT.etdp when the program exits (per-op timings; edgecn/runner/etdump.py
// reads it).
//
// Protocol on stdin/stdout, all numbers little-endian as the host stores them:
//   start:   one line of JSON: {"ok": true, "inputs": [...], "outputs": [...], "load_s": ...}
//            or {"ok": false, "error": "..."} and exit status 3.
//   request: the byte 'R' followed by every input's bytes, in order, each laid out in its dim order
//            (sizes and dim order from the start line: [0, 2, 3, 1] means NHWC bytes).
//   reply:   'K', an f64 of seconds spent in Method::execute, then every output's bytes (each in its
//            dim order); or
//            'E', a u32 length and that many bytes of error text.
//   'Q' or end of input: exit 0.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/runtime/platform/runtime.h>

// The wheel ships libexecutorch_threadpool.so but not threadpool.h; these two declarations
// match the library's exported symbols.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
  size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

const char* dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Byte: return "uint8";
    case ScalarType::Char: return "int8";
    case ScalarType::Short: return "int16";
    case ScalarType::Int: return "int32";
    case ScalarType::Long: return "int64";
    case ScalarType::Half: return "float16";
    case ScalarType::Float: return "float32";
    case ScalarType::Double: return "float64";
    case ScalarType::Bool: return "bool";
    default: return nullptr;
  }
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) { out += ' '; continue; }
    out += c;
  }
  return out;
}

int fail(const std::string& what) {
  std::printf("{\"ok\": false, \"error\": \"%s\"}\n", escape(what).c_str());
  std::fflush(stdout);
  return 3;
}

struct Slot {
  ScalarType dtype;
  std::vector<int32_t> shape;
  size_t nbytes;
  std::vector<uint8_t> dim_order;  // memory order of the dimensions, outermost first ({0, 2, 3, 1}: NHWC)
};

std::string describe(const std::vector<Slot>& slots) {
  std::string s = "[";
  for (size_t i = 0; i < slots.size(); ++i) {
    s += (i ? ", " : "");
    s += "{\"dtype\": \"" + std::string(dtype_name(slots[i].dtype)) + "\", \"shape\": [";
    for (size_t d = 0; d < slots[i].shape.size(); ++d) s += (d ? ", " : "") + std::to_string(slots[i].shape[d]);
    s += "], \"dim_order\": [";
    for (size_t d = 0; d < slots[i].dim_order.size(); ++d) s += (d ? ", " : "") + std::to_string(slots[i].dim_order[d]);
    s += "], \"nbytes\": " + std::to_string(slots[i].nbytes) + "}";
  }
  return s + "]";
}

bool read_exact(void* dst, size_t n) { return std::fread(dst, 1, n, stdin) == n; }

void reply_error(const std::string& what) {
  uint32_t n = static_cast<uint32_t>(what.size());
  std::fputc('E', stdout);
  std::fwrite(&n, sizeof n, 1, stdout);
  std::fwrite(what.data(), 1, n, stdout);
  std::fflush(stdout);
}

bool write_etdump(Module& module, const std::string& out) {
  auto* tracer = static_cast<executorch::etdump::ETDumpGen*>(module.event_tracer());
  executorch::etdump::ETDumpResult dump = tracer->get_etdump_data();
  if (dump.buf == nullptr) return false;
  std::FILE* f = std::fopen(out.c_str(), "wb");
  bool ok = f && std::fwrite(dump.buf, 1, dump.size, f) == dump.size;
  if (f) ok = (std::fclose(f) == 0) && ok;
  std::free(dump.buf);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: edgecn-pte-runner MODEL.pte [--threads N] [--etdump OUT.etdp]";
  std::string path, etdump;
  long threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::strtol(argv[++i], nullptr, 10);
      if (threads < 1) return fail("--threads must be a positive integer");
    } else if (a == "--etdump" && i + 1 < argc) {
      etdump = argv[++i];
    } else if (path.empty() && a.rfind("--", 0) != 0) {
      path = a;
    } else {
      return fail(usage);
    }
  }
  if (path.empty()) return fail(usage);

  executorch::runtime::runtime_init();
  // The pool is sized once, before anything is loaded: resizing it later is unsafe.
  if (threads > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(threads);

  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<executorch::runtime::EventTracer> tracer;
  if (!etdump.empty()) tracer = std::make_unique<executorch::etdump::ETDumpGen>();
  Module module(path, Module::LoadMode::Mmap, std::move(tracer));
  // InternalConsistency verifies the flatbuffer before anything reads it: a damaged file is refused
  // instead of crashing the program.
  Error err = module.load(executorch::runtime::Program::Verification::InternalConsistency);
  if (err != Error::Ok) return fail("the program failed verification (ExecuTorch error " + std::to_string(int(err)) + ")");
  err = module.load_method("forward");
  if (err != Error::Ok) return fail("could not load method 'forward' (ExecuTorch error " + std::to_string(int(err)) + ")");
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto meta = module.method_meta("forward");
  if (!meta.ok()) return fail("could not read the method's metadata");

  // Each input's and output's dtype, shape and size; `which` names it in an error.
  auto slot = [](auto t, const std::string& which, std::vector<Slot>& into) -> std::string {
    if (!t.ok()) return which + " is not a tensor";
    if (!dtype_name(t->scalar_type())) return which + " has an unsupported dtype";
    auto sizes = t->sizes();
    auto order = t->dim_order();
    into.push_back({t->scalar_type(), std::vector<int32_t>(sizes.begin(), sizes.end()), t->nbytes(),
                    std::vector<uint8_t>(order.begin(), order.end())});
    return "";
  };
  std::vector<Slot> ins, outs;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    std::string problem = slot(meta->input_tensor_meta(i), "input " + std::to_string(i), ins);
    if (!problem.empty()) return fail(problem);
  }
  for (size_t i = 0; i < meta->num_outputs(); ++i) {
    std::string problem = slot(meta->output_tensor_meta(i), "output " + std::to_string(i), outs);
    if (!problem.empty()) return fail(problem);
  }
  size_t pool = executorch::extension::threadpool::get_threadpool()->get_thread_count();
  std::printf("{\"ok\": true, \"inputs\": %s, \"outputs\": %s, \"load_s\": %.9f, \"threads\": %zu}\n",
              describe(ins).c_str(), describe(outs).c_str(), load_s, pool);
  std::fflush(stdout);

  // Input tensors wrap buffers that live as long as the program; each request refills them.
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<EValue> values;
  std::vector<executorch::extension::TensorPtr> tensors;
  for (const Slot& s : ins) {
    buffers.emplace_back(s.nbytes);
    std::vector<executorch::aten::SizesType> sizes(s.shape.begin(), s.shape.end());
    // Strides from the program's dim order: a program exported with a channels-last input
    // (NHWC in memory) takes its bytes in that order, with no conversion before the first op.
    std::vector<executorch::aten::StridesType> strides(sizes.size(), 1);
    executorch::aten::StridesType step = 1;
    for (size_t k = s.dim_order.size(); k-- > 0;) {
      strides[s.dim_order[k]] = step;
      step *= sizes[s.dim_order[k]];
    }
    tensors.push_back(executorch::extension::from_blob(buffers.back().data(), sizes, strides, s.dtype));
    values.emplace_back(tensors.back());
  }

  int cmd;
  while ((cmd = std::fgetc(stdin)) != EOF && cmd != 'Q') {
    if (cmd != 'R') return fail("unknown request byte");
    for (auto& b : buffers)
      if (!read_exact(b.data(), b.size())) return fail("input ended in the middle of a request");
    auto t0 = std::chrono::steady_clock::now();
    auto result = module.execute("forward", values);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!result.ok()) {
      reply_error("Method::execute failed (ExecuTorch error " + std::to_string(int(result.error())) + ")");
      continue;
    }
    std::fputc('K', stdout);
    std::fwrite(&seconds, sizeof seconds, 1, stdout);
    for (size_t i = 0; i < outs.size(); ++i) {
      const auto& t = (*result)[i].toTensor();
      std::fwrite(t.const_data_ptr(), 1, outs[i].nbytes, stdout);
    }
    std::fflush(stdout);
  }
  if (!etdump.empty() && !write_etdump(module, etdump)) {
    std::fprintf(stderr, "E could not write the ETDump to %s\n", etdump.c_str());
    return 4;
  }
  return 0;
}
