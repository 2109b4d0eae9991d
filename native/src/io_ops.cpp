// PyTorch-format serialisation through libtorch's pickler: the bytes are what Python's
// torch.save writes for a dict of tensors, so torch.load reads them and vice versa.
// (safetensors needs no native code: it is written in TS over toArrayBuffer/fromArray.)
#include "engram.h"

namespace engram {

// pickleSave(names[], ids[]) -> Buffer holding a {name: tensor} dict.
OP(pickleSave) {
  auto names = info[0].As<Napi::Array>();
  auto tensors = TL(info, 1);
  if (names.Length() != tensors.size()) fail("config", "one name per tensor expected");
  c10::Dict<std::string, at::Tensor> dict;
  for (uint32_t k = 0; k < names.Length(); ++k) {
    dict.insert(names.Get(k).As<Napi::String>().Utf8Value(), tensors[k].detach().to(at::kCPU));
  }
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  return Napi::Buffer<char>::Copy(info.Env(), bytes.data(), bytes.size());
}

// pickleLoad(bytes) -> { names: string[], ids: number[] } from a dict of tensors.
OP(pickleLoad) {
  auto buffer = info[0].As<Napi::Uint8Array>();
  std::vector<char> bytes(reinterpret_cast<const char*>(buffer.Data()),
                          reinterpret_cast<const char*>(buffer.Data()) + buffer.ByteLength());
  c10::IValue value = torch::pickle_load(bytes);
  if (!value.isGenericDict()) fail("io", "expected a dict of tensors, found " + value.tagKind());
  auto names = Napi::Array::New(info.Env());
  auto ids = Napi::Array::New(info.Env());
  uint32_t k = 0;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor()) fail("io", "expected a dict of string -> tensor");
    names.Set(k, entry.key().toStringRef());
    ids.Set(k, R(info, entry.value().toTensor()));
    ++k;
  }
  auto out = Napi::Object::New(info.Env());
  out.Set("names", names);
  out.Set("ids", ids);
  return out;
}

}  // namespace engram
