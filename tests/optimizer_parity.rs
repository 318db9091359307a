//! Our AdamW against torch.optim.AdamW on the same gradients, from the
//! fixture scripts/make_parity_fixture.py wrote.

use std::collections::HashMap;
use std::path::PathBuf;

use tch::{Kind, Tensor};
use tunebook::train::optim::{AdamW, ParamSpec};

#[test]
fn adamw_matches_pytorch_to_1e_6_with_decay_groups_and_a_zero_rate_step() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adamw_steps.safetensors");
    let t: HashMap<String, Tensor> = Tensor::read_safetensors(path).unwrap().into_iter().collect();
    let weight = t["weight_init"].copy().set_requires_grad(true);
    let bias = t["bias_init"].copy().set_requires_grad(true);
    let mut opt = AdamW::new(vec![ParamSpec::new(weight.shallow_clone(), 0.01), ParamSpec::new(bias.shallow_clone(), 0.0)], 0.9, 0.999, 1e-8);
    let lrs: Vec<f64> = Vec::try_from(&t["lrs"]).unwrap();
    for (i, lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        // A loss whose gradient is exactly the recorded one.
        let loss = (&weight * &t[&format!("weight_grad_{i}")]).sum(Kind::Float) + (&bias * &t[&format!("bias_grad_{i}")]).sum(Kind::Float);
        loss.backward();
        opt.step(*lr);
        for (name, param) in [("weight", &weight), ("bias", &bias)] {
            let expected = &t[&format!("{name}_after_{i}")];
            let diff = (param - expected).abs().max().double_value(&[]);
            assert!(diff <= 1e-6, "step {i} (lr {lr}): {name} differs from PyTorch by {diff}");
        }
    }
    assert_eq!(opt.steps_taken(), lrs.len() as i64);
}
