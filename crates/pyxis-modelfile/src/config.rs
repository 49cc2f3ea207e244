//! The facts a Hugging Face `config.json` gives: architecture, shape of the attention, context, quantisation.

use serde_json::Value;

/// Shape facts from `config.json`, each absent when the config does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HfConfig {
    pub architecture: Option<String>,
    pub context_length: Option<u32>,
    pub hidden_size: Option<u32>,
    pub layers: Option<u32>,
    pub attention_heads: Option<u32>,
    pub kv_heads: Option<u32>,
    pub head_dim: Option<u32>,
    /// MLA (DeepSeek V2/V3): the KV cache holds this latent plus the rotary part per layer.
    pub kv_lora_rank: Option<u32>,
    pub qk_rope_head_dim: Option<u32>,
    pub quant: Option<Quant>,
}

/// `quantization_config`: the method and, when stated, the bits of packed integer weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quant {
    pub method: String,
    pub bits: Option<u32>,
}

impl Quant {
    pub fn label(&self) -> String {
        match self.bits {
            Some(b) if self.method != "fp8" => format!("{}-int{b}", self.method),
            _ => self.method.clone(),
        }
    }
}

/// A positive integer that fits in u32, from the first of `keys` present in `v` or its `text_config`
/// (multimodal models keep the language model's shape there).
fn num(v: &Value, keys: &[&str]) -> Option<u32> {
    let pick = |obj: &Value| {
        keys.iter()
            .filter_map(|k| obj.get(*k))
            .find_map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0))
    };
    pick(v).or_else(|| v.get("text_config").and_then(pick))
}

pub(crate) fn parse(v: &Value) -> HfConfig {
    let architecture = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .or_else(|| v.get("model_type").and_then(Value::as_str))
        .map(str::to_string);
    let hidden_size = num(v, &["hidden_size", "n_embd", "d_model", "dim"]);
    let attention_heads = num(v, &["num_attention_heads", "n_head", "num_heads", "n_heads"]);
    let kv_heads = num(
        v,
        &[
            "num_key_value_heads",
            "num_kv_heads",
            "n_head_kv",
            "multi_query_group_num",
            "n_kv_heads",
        ],
    )
    .or_else(|| {
        // Falcon's multi-query flag: one KV head.
        (v.get("multi_query").and_then(Value::as_bool) == Some(true)).then_some(1)
    })
    .or(attention_heads);
    let head_dim = num(v, &["head_dim"]).or_else(|| match (hidden_size, attention_heads) {
        (Some(h), Some(n)) if h.is_multiple_of(n) => Some(h / n),
        _ => None,
    });
    HfConfig {
        architecture,
        context_length: num(
            v,
            &[
                "max_position_embeddings",
                "n_positions",
                "max_sequence_length",
                "seq_length",
                "max_seq_len",
            ],
        ),
        hidden_size,
        layers: num(v, &["num_hidden_layers", "n_layer", "num_layers", "n_layers"]),
        attention_heads,
        kv_heads,
        head_dim,
        kv_lora_rank: num(v, &["kv_lora_rank"]),
        qk_rope_head_dim: num(v, &["qk_rope_head_dim"]),
        quant: quant(v),
    }
}

fn quant(v: &Value) -> Option<Quant> {
    let q = v.get("quantization_config")?;
    let method = q
        .get("quant_method")
        .and_then(Value::as_str)
        .unwrap_or("quantized")
        .to_string();
    let bits = q
        .get("bits")
        .or_else(|| q.get("w_bit"))
        .and_then(Value::as_u64)
        .or_else(|| {
            // compressed-tensors: config_groups.<group>.weights.num_bits
            q.get("config_groups")?
                .as_object()?
                .values()
                .find_map(|g| g.get("weights")?.get("num_bits")?.as_u64())
        })
        .or_else(|| {
            if q.get("load_in_4bit").and_then(Value::as_bool) == Some(true) {
                Some(4)
            } else if q.get("load_in_8bit").and_then(Value::as_bool) == Some(true) {
                Some(8)
            } else {
                None
            }
        })
        .and_then(|b| u32::try_from(b).ok())
        .filter(|b| (1..=32).contains(b));
    Some(Quant { method, bits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama_shape() {
        let c = parse(&json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072
        }));
        assert_eq!(c.architecture.as_deref(), Some("LlamaForCausalLM"));
        assert_eq!(
            (c.kv_heads, c.head_dim, c.context_length),
            (Some(8), Some(128), Some(131072))
        );
    }

    #[test]
    fn multimodal_text_config_and_mha_default() {
        let c = parse(&json!({
            "model_type": "llava", "text_config": {"hidden_size": 64, "num_attention_heads": 4,
            "num_hidden_layers": 2, "max_position_embeddings": 512}
        }));
        assert_eq!(c.architecture.as_deref(), Some("llava"));
        assert_eq!((c.kv_heads, c.head_dim, c.layers), (Some(4), Some(16), Some(2)));
    }

    #[test]
    fn hostile_values_are_ignored() {
        let c = parse(
            &json!({"hidden_size": -1, "num_attention_heads": 0, "num_hidden_layers": 1e30,
            "max_position_embeddings": 99999999999u64, "architectures": [3]}),
        );
        assert_eq!(c, HfConfig::default());
    }

    #[test]
    fn quantisation() {
        let c = parse(&json!({"quantization_config": {"quant_method": "gptq", "bits": 4}}));
        assert_eq!(c.quant.map(|q| q.label()).as_deref(), Some("gptq-int4"));
        let c = parse(&json!({"quantization_config": {"quant_method": "fp8"}}));
        assert_eq!(c.quant.map(|q| q.label()).as_deref(), Some("fp8"));
    }
}
