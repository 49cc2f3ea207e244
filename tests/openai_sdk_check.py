"""Drives a running Pyxis gateway with the official `openai` Python package.

usage: python openai_sdk_check.py BASE_URL API_KEY
Exits non-zero with a message on the first failed check.
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)

# Model list: the demo fleet's models.
ids = sorted(m.id for m in client.models.list())
assert ids == ["llama-3-8b", "nomic-embed-text", "qwen2.5-7b"], ids

# Chat, non-streaming.
r = client.chat.completions.create(
    model="llama-3-8b", messages=[{"role": "user", "content": "Hello from the SDK"}], max_tokens=10
)
assert r.choices[0].message.content, r
assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

# Chat, streaming with include_usage: content deltas, then one usage chunk with no choices.
stream = client.chat.completions.create(
    model="qwen2.5-7b",
    messages=[{"role": "user", "content": "Stream to me"}],
    max_tokens=16,
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        assert chunk.choices == [], chunk
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert text, "no streamed text"
assert usage is not None and usage.completion_tokens > 0, usage
assert finish in ("length", "stop"), finish

# Completions route.
c = client.completions.create(model="llama-3-8b", prompt="Once", max_tokens=4)
assert c.choices[0].text, c

# A bad key raises AuthenticationError; an unknown model NotFoundError.
bad = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong-key", max_retries=0)
try:
    bad.models.list()
    raise SystemExit("bad key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404
    assert e.code == "model_not_found", e.code
try:
    client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "x"}], max_tokens=-1)
    raise SystemExit("negative max_tokens was accepted")
except openai.BadRequestError as e:
    assert e.param == "max_tokens", e.param

# Embeddings, floats and base64 (the SDK's default decodes base64 itself).
e = client.embeddings.create(model="nomic-embed-text", input=["first text", "second text"])
assert [d.index for d in e.data] == [0, 1], e
assert len(e.data[0].embedding) == 768, len(e.data[0].embedding)
assert e.usage.prompt_tokens > 0, e.usage
f = client.embeddings.create(model="nomic-embed-text", input="first text", encoding_format="float")
assert abs(f.data[0].embedding[0] - e.data[0].embedding[0]) < 1e-6

print("openai SDK checks passed")
