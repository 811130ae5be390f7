"""harness.zoo.tflite_file on files written the way the field's tools write them.

Every file is made here, once per module: tiny Keras classifiers (32x32x3, fixed batch 1 as zoo
files have) through ``tf.lite.TFLiteConverter`` with each quantization recipe it offers, a TF1
quantization-aware graph through the v1 converter (the only way left to write uint8 activations),
and metadata written with tflite-support's own image-classifier MetadataWriter.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from harness.frameworks import import_torch
from harness.zoo import tflite_file as T
from harness.zoo.base import ZooError

LABELS = ("tench", "goldfish", "great white shark", "tiger shark", "hammerhead")


def _keras_model(keras, softmax=True, batch_size=1, two_outputs=False):
    keras.utils.set_random_seed(0)
    x = keras.Input((32, 32, 3), batch_size=batch_size, name="image")
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    # 3*3*16*16 = 2304 weights: over the 1024 below which dynamic-range quantization leaves a tensor float
    h = keras.layers.Conv2D(16, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    y = keras.layers.Dense(len(LABELS), activation="softmax" if softmax else None)(h)
    if two_outputs:  # a dict: the signature names the outputs
        return keras.Model(x, {"probs": y, "embedding": keras.layers.Dense(3)(h)})
    return keras.Model(x, y)


def _representative():
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]


def _legacy_uint8(tf) -> bytes:
    """A TF1 quantization-aware graph (fake-quant nodes) converted with inference_type uint8."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(0)
    fq = tf.quantization.fake_quant_with_min_max_args
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, (1, 32, 32, 3), name="input")
        w = fq(tf.constant(rng.uniform(-1, 1, (3, 3, 3, 16)).astype(np.float32)), -1.0, 1.0)
        h = fq(tf.nn.relu6(tf.nn.conv2d(fq(x, -1.0, 1.0), w, 1, "VALID")), 0.0, 6.0)
        h = fq(tf.reduce_mean(h, [1, 2]), 0.0, 6.0)
        w2 = fq(tf.constant(rng.uniform(-1, 1, (16, len(LABELS))).astype(np.float32)), -1.0, 1.0)
        z = fq(tf.matmul(h, w2), -8.0, 8.0)
        p = fq(tf.nn.softmax(z), 0.0, 255 / 256, name="probs")
        with tf1.Session(graph=g) as sess:
            c = tf1.lite.TFLiteConverter.from_session(sess, [x], [p])
            c.inference_type = tf.uint8
            c.quantized_input_stats = {"input": (127.5, 127.5)}
            return c.convert()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import_torch()
    from harness.frameworks import import_keras, import_tensorflow

    tf = import_tensorflow()
    keras = import_keras()
    out = tmp_path_factory.mktemp("tflite_file")
    probs, logits = _keras_model(keras), _keras_model(keras, softmax=False)
    INT8 = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    def convert(model, optimize=False, full_integer=False, io=None, **options):
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        if optimize or full_integer:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if full_integer:  # without a representative dataset, DEFAULT is dynamic range
            c.representative_dataset = _representative
        if io is not None:
            c.target_spec.supported_ops = INT8
            c.inference_input_type = c.inference_output_type = io
        for k, v in options.items():
            if k == "supported_types":
                c.target_spec.supported_types = v
            elif k == "supported_ops":
                c.target_spec.supported_ops = v
            else:
                setattr(c, k, v)
        return c.convert()

    made = {
        "float32": convert(probs),
        "float32_dynamic_batch": convert(_keras_model(keras, batch_size=None)),
        "dynamic_int8": convert(probs, optimize=True),
        "float16": convert(probs, optimize=True, supported_types=[tf.float16]),
        "uint8": convert(probs, full_integer=True, io=tf.uint8),
        "int8": convert(probs, full_integer=True, io=tf.int8),
        "uint8_logits": convert(logits, full_integer=True, io=tf.uint8),
        "int8_logits": convert(logits, full_integer=True, io=tf.int8),
        "int8_float_edges": convert(probs, full_integer=True),
        "int16x8": convert(probs, full_integer=True, supported_ops=[
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]),
        "int8_per_tensor": convert(probs, full_integer=True, io=tf.int8, _experimental_disable_per_channel=True),
        "two_outputs": convert(_keras_model(keras, two_outputs=True)),
        "uint8_legacy": _legacy_uint8(tf),
    }
    paths = {}
    for name, data in made.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(data)

    from tensorflow_lite_support.metadata.python.metadata_writers import image_classifier, writer_utils

    labels = out / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    for name in ("float32", "uint8"):
        writer = image_classifier.MetadataWriter.create_for_inference(
            writer_utils.load_file(str(paths[name])), input_norm_mean=[127.5], input_norm_std=[127.5],
            label_file_paths=[str(labels)])
        paths[f"{name}_metadata"] = out / f"{name}_metadata.tflite"
        writer_utils.save_file(writer.populate(), str(paths[f"{name}_metadata"]))
    return paths


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _weight_scales(recipe):
    return set(recipe.evidence["weight_scales"].values())


# ------------------------------------------------------------------ structure


def test_float32_structure_agrees_with_the_interpreter(files):
    path = files["float32"]
    interp = _interpreter(path)
    (inp,), (out,) = T.inputs(path), T.outputs(path)
    (detail,), (out_detail,) = interp.get_input_details(), interp.get_output_details()
    assert (inp.name, inp.index, inp.shape, inp.dtype) == (detail["name"], detail["index"], (1, 32, 32, 3), "float32")
    assert inp.shape_signature == tuple(detail["shape_signature"]) and inp.batch == 1
    assert T.input_batch(path) == 1 and not inp.quantized
    assert (out.name, out.shape) == (out_detail["name"], (1, len(LABELS)))
    (sig,) = T.signatures(path)
    assert interp.get_signature_list() == {sig.key: {"inputs": list(sig.input_names), "outputs": list(sig.output_names)}}
    assert sig.key == "serving_default" and sig.input_names == ("image",) and dict(sig.outputs)["output_0"] == out

    recipe = T.detect_recipe(path)
    assert (recipe.name, recipe.per_channel) == ("float32", None)
    assert [e.kind for e in recipe.inputs + recipe.outputs] == ["float", "float"]
    kind = T.output_kind(path)
    assert kind.kind == "probabilities" and kind.evidence == ("produced by SOFTMAX",)


def test_dynamic_batch_from_shape_signature(files):
    path = files["float32_dynamic_batch"]
    (inp,) = T.inputs(path)
    assert inp.shape_signature == (-1, 32, 32, 3) and inp.shape == (1, 32, 32, 3)
    assert T.input_batch(path) == -1 == tuple(_interpreter(path).get_input_details()[0]["shape_signature"])[0]


def test_dynamic_range_int8(files):
    recipe = T.detect_recipe(files["dynamic_int8"])
    assert recipe.name == "dynamic_int8"
    assert recipe.evidence["activation_dtypes"] == {"float32": 6}
    assert recipe.evidence["weight_dtypes"]["int8"] >= 1  # the 2304-weight conv; the small ones stay float
    assert [e.kind for e in recipe.inputs + recipe.outputs] == ["float", "float"]
    assert T.output_kind(files["dynamic_int8"]).kind == "probabilities"


def test_float16_weights_dequantized_at_run_time(files):
    recipe = T.detect_recipe(files["float16"])
    assert (recipe.name, recipe.per_channel) == ("float16", None)
    assert recipe.evidence["weight_dtypes"] == {"float16": 3}
    assert recipe.evidence["dequantized_constants"]["float16"] >= 3
    assert set(recipe.evidence["activation_dtypes"]) == {"float32"}


@pytest.mark.parametrize("name, dtype, zero_point", [("uint8", "uint8", 0), ("int8", "int8", -128)])
def test_full_integer_with_integer_interface(files, name, dtype, zero_point):
    path = files[name]
    recipe = T.detect_recipe(path)
    assert (recipe.name, recipe.per_channel) == ("int8", True)
    assert set(recipe.evidence["activation_dtypes"]) == {"int8"} and max(_weight_scales(recipe)) > 1
    (inp,), (out,) = recipe.inputs, recipe.outputs
    detail = _interpreter(path).get_input_details()[0]
    assert (inp.kind, inp.dtype) == ("quantized", dtype)
    assert inp.scale == (pytest.approx(detail["quantization"][0]),) and inp.zero_point == (detail["quantization"][1],)
    # a uint8 interface is a QUANTIZE (uint8 <-> int8) around the int8 interior; an int8 one has none
    assert (inp.op, out.op) == (("QUANTIZE", "QUANTIZE") if dtype == "uint8" else (None, None))
    assert (out.kind, out.dtype, out.scale, out.zero_point) == ("quantized", dtype, (1 / 256,), (zero_point,))
    kind = T.output_kind(path)
    assert kind.kind == "probabilities"
    assert kind.evidence[0] == ("produced by SOFTMAX -> QUANTIZE" if dtype == "uint8" else "produced by SOFTMAX")
    assert kind.evidence[1] == f"{dtype} output quantized as a softmax (scale 0.00390625, zero point {zero_point})"


@pytest.mark.parametrize("name", ["uint8_logits", "int8_logits"])
def test_full_integer_logits(files, name):
    assert T.detect_recipe(files[name]).name == "int8"
    (out,) = T.outputs(files[name])
    assert out.scale != (1 / 256,)
    kind = T.output_kind(files[name], 0)
    assert kind.kind == "logits" and "FULLY_CONNECTED" in kind.evidence[0]


def test_float_interface_around_an_int8_interior(files):
    recipe = T.detect_recipe(files["int8_float_edges"])
    assert (recipe.name, recipe.per_channel) == ("int8", True)
    (inp,), (out,) = recipe.inputs, recipe.outputs
    assert (inp.kind, inp.dtype, inp.op, inp.scale) == ("float_with_quantize", "float32", "QUANTIZE", ())
    assert (out.kind, out.dtype, out.op) == ("float_with_quantize", "float32", "DEQUANTIZE")
    assert T.output_kind(files["int8_float_edges"]).evidence == ("produced by SOFTMAX -> DEQUANTIZE",)


def test_int16_activations_int8_weights(files):
    recipe = T.detect_recipe(files["int16x8"])
    assert recipe.name == "int16x8" and recipe.per_channel is True
    assert set(recipe.evidence["activation_dtypes"]) == {"int16"} and recipe.evidence["weight_dtypes"] == {"int8": 3}
    assert [e.kind for e in recipe.inputs + recipe.outputs] == ["float_with_quantize"] * 2
    assert T.output_kind(files["int16x8"]).kind == "probabilities"


def test_per_tensor_int8(files):
    recipe = T.detect_recipe(files["int8_per_tensor"])
    assert (recipe.name, recipe.per_channel) == ("int8", False)
    assert _weight_scales(recipe) == {1}


def test_uint8_legacy_quantization_aware_graph(files):
    path = files["uint8_legacy"]
    recipe = T.detect_recipe(path)
    assert (recipe.name, recipe.per_channel) == ("uint8_legacy", False)
    assert set(recipe.evidence["activation_dtypes"]) == {"uint8"} and recipe.evidence["weight_dtypes"] == {"uint8": 2}
    assert [(e.kind, e.dtype, e.op) for e in recipe.inputs + recipe.outputs] == [("quantized", "uint8", None)] * 2
    assert T.signatures(path) == ()  # TF1's converter writes none: outputs go by tensor name
    kind = T.output_kind(path, "probs")
    assert kind.kind == "probabilities" and len(kind.evidence) == 2


def test_two_outputs_picked_by_signature_or_tensor_name(files):
    path = files["two_outputs"]
    s = T.read_structure(path)
    (sig,) = s.signatures
    assert sorted(sig.output_names) == ["embedding", "probs"]
    probs = s.output("probs")
    assert probs.shape == (1, len(LABELS)) and s.output(probs.name) == probs
    assert T.output_kind(path, "probs").kind == "probabilities"
    assert T.output_kind(path, "embedding").kind == "logits"
    with pytest.raises(T.TFLiteFileError) as e:
        s.output()
    assert "has 2 outputs, name one" in str(e.value) and "serving_default:probs" in str(e.value)
    with pytest.raises(ZooError) as e:
        T.output_kind(path, "scores")
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "no output named 'scores'" in message
    assert "serving_default:embedding" in message and "[1, 3] float32" in message


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "photo.tflite"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(T.TFLiteFileError, match="not a TFLite flatbuffer"):
        T.detect_recipe(bad)
    with pytest.raises(T.TFLiteFileError, match="cannot read"):
        T.outputs(tmp_path / "missing.tflite")


# ------------------------------------------------------------------ metadata


def test_metadata_from_tflite_supports_writer(files):
    meta = T.read_metadata(files["float32_metadata"])
    assert meta.name == "ImageClassifier" and meta.min_parser_version
    (inp,) = meta.inputs
    assert (inp.index, inp.name, inp.color_space, inp.content) == (0, "image", "RGB", "ImageProperties")
    assert (inp.mean, inp.std, inp.min, inp.max) == ((127.5,), (127.5,), (-1.0,), (1.0,))
    (out,) = meta.outputs
    assert (out.labels, out.labels_file, out.min, out.max) == (LABELS, "labels.txt", (0.0,), (1.0,))
    assert meta.packed_files == ("labels.txt",)
    assert [(f.name, f.type, f.attached_to) for f in meta.associated_files] == [
        ("labels.txt", "TENSOR_AXIS_LABELS", "output probability")]
    assert '"mean": [\n' in meta.json and "TENSOR_AXIS_LABELS" in meta.json
    kind = T.output_kind(files["float32_metadata"], metadata=meta)
    assert kind.evidence == ("produced by SOFTMAX", "metadata output 'probability' has stats min 0, max 1")
    # the metadata is a buffer and a zip added to the file: the graph reads the same
    assert T.detect_recipe(files["float32_metadata"]) == T.detect_recipe(files["float32"])


def test_metadata_of_a_uint8_model_gives_quantized_stats(files):
    meta = T.read_metadata(files["uint8_metadata"])
    (inp,), (out,) = meta.inputs, meta.outputs
    assert (inp.mean, inp.std, inp.min, inp.max) == ((127.5,), (127.5,), (0.0,), (255.0,))
    assert (out.labels, out.min, out.max) == (LABELS, (0.0,), (255.0,))


def test_no_metadata_is_none(files):
    # the converter's own metadata entries (min_runtime_version, CONVERSION_METADATA) are not Model Metadata
    assert T.read_metadata(files["float32"]) is None
    assert T.read_metadata(files["uint8_legacy"]) is None


def _corrupt(src, dst, change):
    data = bytearray(src.read_bytes())
    change(data)
    dst.write_bytes(bytes(data))
    return dst


def _assert_one_line(excinfo, path, *parts):
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ZooError) and isinstance(excinfo.value, T.TFLiteMetadataError)
    assert "\n" not in message and message.startswith(f"{path}: malformed TFLite metadata: ")
    for part in parts:
        assert part in message, message


def test_corrupted_zip_of_associated_files(files, tmp_path):
    src = files["float32_metadata"]
    end = src.read_bytes().rfind(b"PK\x05\x06")

    def break_directory(d):  # the central directory's entry loses its signature
        at = d.rfind(b"PK\x01\x02")
        d[at + 3] = 0

    path = _corrupt(src, tmp_path / "bad_directory.tflite", break_directory)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "zip of associated files appended to the model cannot be read", "central directory")

    def misplace_directory(d):  # the end record puts the directory elsewhere: the entry read is not a file header
        d[end + 16:end + 20] = (int.from_bytes(d[end + 16:end + 20], "little") + 7).to_bytes(4, "little")

    path = _corrupt(src, tmp_path / "misplaced_directory.tflite", misplace_directory)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "'labels.txt' cannot be read from the appended zip")

    def drop_zip(d):
        del d[d.rfind(b"PK\x03\x04"):]

    path = _corrupt(src, tmp_path / "no_zip.tflite", drop_zip)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "names the associated file 'labels.txt'", "no readable zip")

    def flip_label_byte(d):  # stored uncompressed: the CRC check fails on read
        at = d.rfind(b"great white shark")
        d[at] ^= 0x20

    assert zipfile.ZipFile(src).getinfo("labels.txt").compress_type == zipfile.ZIP_STORED
    path = _corrupt(src, tmp_path / "bad_crc.tflite", flip_label_byte)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "'labels.txt' cannot be read from the appended zip", "CRC")


def test_corrupted_metadata_buffer(files, tmp_path):
    from tensorflow_lite_support.metadata.python import metadata as md

    src = files["float32_metadata"]
    meta = md.get_metadata_buffer(src.read_bytes())
    at = src.read_bytes().find(meta)
    assert at > 0

    def identifier(d):
        d[at + 4:at + 8] = b"XXXX"

    path = _corrupt(src, tmp_path / "bad_identifier.tflite", identifier)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "lacks the M001 identifier")

    def root_offset(d):  # the root table lies past the buffer's end
        d[at:at + 4] = (len(meta) + 4096).to_bytes(4, "little")

    path = _corrupt(src, tmp_path / "bad_root.tflite", root_offset)
    with pytest.raises(T.TFLiteMetadataError) as e:
        T.read_metadata(path)
    _assert_one_line(e, path, "the metadata buffer cannot be parsed")
