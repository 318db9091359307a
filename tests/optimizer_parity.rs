//! Our optimizers against PyTorch's on the same gradients, from the
//! fixtures scripts/make_parity_fixture.py wrote with torch 2.11: AdamW,
//! Adam, SGD with momentum and SGD with Nesterov momentum, each with a
//! decayed weight, an undecayed bias, and a zero-rate step; and fp16 loss
//! scaling against torch.amp.GradScaler, overflows included.

use std::collections::HashMap;
use std::path::PathBuf;

use tch::{Kind, Tensor};
use tunebook::train::optim::{Method, Optimizer, ParamSpec};

fn check(fixture: &str, method: Method) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
    let t: HashMap<String, Tensor> = Tensor::read_safetensors(path).unwrap().into_iter().collect();
    let weight = t["weight_init"].copy().set_requires_grad(true);
    let bias = t["bias_init"].copy().set_requires_grad(true);
    let mut opt = Optimizer::new(method, vec![ParamSpec::new("weight", weight.shallow_clone(), 0.01), ParamSpec::new("bias", bias.shallow_clone(), 0.0)], 0.9, 0.999, 1e-8);
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
            assert!(diff <= 1e-6, "{fixture} step {i} (lr {lr}): {name} differs from PyTorch by {diff}");
        }
    }
    assert_eq!(opt.steps_taken(), lrs.len() as i64);
}

#[test]
fn adamw_matches_pytorch_to_1e_6_with_decay_groups_and_a_zero_rate_step() {
    check("adamw_steps.safetensors", Method::AdamW);
}

#[test]
fn adam_with_l2_decay_matches_pytorch_to_1e_6() {
    check("adam_steps.safetensors", Method::Adam);
}

#[test]
fn sgd_with_momentum_matches_pytorch_to_1e_6() {
    check("sgd_momentum_steps.safetensors", Method::Sgd { momentum: 0.9, nesterov: false });
}

#[test]
fn sgd_with_nesterov_momentum_matches_pytorch_to_1e_6() {
    check("sgd_nesterov_steps.safetensors", Method::Sgd { momentum: 0.9, nesterov: true });
}

#[test]
fn fp16_loss_scaling_matches_torch_amp_grad_scaler_with_overflows() {
    use tunebook::train::loss_scale::{LossScaler, ScalerConfig};
    use tunebook::train::optim::clip_norm;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grad_scaler_steps.safetensors");
    let t: HashMap<String, Tensor> = Tensor::read_safetensors(path).unwrap().into_iter().collect();
    let weight = t["weight_init"].copy().set_requires_grad(true);
    let bias = t["bias_init"].copy().set_requires_grad(true);
    let mut opt = Optimizer::new(Method::AdamW, vec![ParamSpec::new("weight", weight.shallow_clone(), 0.01), ParamSpec::new("bias", bias.shallow_clone(), 0.0)], 0.9, 0.999, 1e-8);
    let mut scaler = LossScaler::new(ScalerConfig { init_scale: 1024.0, growth_interval: 2, ..ScalerConfig::default() }, tch::Device::Cpu);
    let skipped: Vec<i64> = Vec::try_from(&t["skipped"]).unwrap();
    let mut worst = 0f64;
    assert_eq!(skipped.iter().sum::<i64>(), 3, "the fixture injects three overflows");
    for (i, &expect_skip) in skipped.iter().enumerate() {
        let mut grads = vec![t[&format!("weight_grad_{i}")].copy(), t[&format!("bias_grad_{i}")].copy()];
        let overflowed = scaler.unscale(&mut grads).unwrap();
        assert_eq!(overflowed, expect_skip == 1, "step {i}: overflow found");
        if !overflowed {
            let norm = clip_norm(&grads, 1.0);
            let expected = t[&format!("norm_{i}")].double_value(&[0]);
            assert!((norm - expected).abs() <= 1e-6 * expected, "step {i}: clipped norm {norm}, PyTorch {expected}");
            opt.step_with(1e-2, grads);
        }
        scaler.update(overflowed);
        assert_eq!(scaler.scale(), t[&format!("scale_after_{i}")].double_value(&[0]), "step {i}: the scale");
        for (name, param) in [("weight", &weight), ("bias", &bias)] {
            // Measured 0 (bit for bit, skipped steps included); 1e-7 leaves room for another libtorch build.
            let diff = (param - &t[&format!("{name}_after_{i}")]).abs().max().double_value(&[]);
            worst = worst.max(diff);
            assert!(diff <= 1e-7, "step {i}: {name} differs from PyTorch by {diff}");
        }
    }
    assert_eq!(scaler.skipped(), 3);
    eprintln!("GradScaler parity: largest weight difference {worst:e}");
}

/// Adam and AdamW run libtorch's fused kernel over contiguous tensors and
/// element-wise ops over the rest: both give the same weights, with
/// learning-rate scales and weight decay groups mixed in one step.
#[test]
fn the_fused_kernel_and_the_element_wise_update_agree() {
    for method in [Method::AdamW, Method::Adam] {
        tch::manual_seed(3);
        let values: Vec<Tensor> = (0..4).map(|i| Tensor::randn([5, 3 + i], (Kind::Float, tch::Device::Cpu))).collect();
        let grads: Vec<Vec<Tensor>> = (0..3).map(|_| values.iter().map(|v| v.randn_like()).collect()).collect();
        // The same values, once contiguous and once as transposed views
        // (which the fused kernel does not take).
        let contiguous: Vec<Tensor> = values.iter().map(|v| v.copy().set_requires_grad(true)).collect();
        let strided: Vec<Tensor> = values.iter().map(|v| v.tr().contiguous().tr().set_requires_grad(true)).collect();
        assert!(strided.iter().all(|t| !t.is_contiguous()) && contiguous.iter().all(Tensor::is_contiguous));
        let make = |params: &[Tensor]| {
            let specs = params
                .iter()
                .enumerate()
                .map(|(i, p)| ParamSpec { lr_scale: if i % 2 == 0 { 1.0 } else { 0.5 }, ..ParamSpec::new(&format!("p{i}"), p.shallow_clone(), if i < 2 { 0.01 } else { 0.0 }) })
                .collect();
            Optimizer::new(method, specs, 0.9, 0.999, 1e-8)
        };
        // Contiguous parameters whose gradients come strided, as a
        // convolution over channels-last images returns them.
        let mixed_params: Vec<Tensor> = values.iter().map(|v| v.copy().set_requires_grad(true)).collect();
        let (mut fused, mut elementwise, mut mixed) = (make(&contiguous), make(&strided), make(&mixed_params));
        for (step, g) in grads.iter().enumerate() {
            let lr = [0.0, 1e-2, 3e-3][step];
            fused.step_with(lr, g.iter().map(Tensor::copy).collect());
            elementwise.step_with(lr, g.iter().map(|t| t.tr().contiguous().tr()).collect());
            mixed.step_with(lr, g.iter().map(|t| t.tr().contiguous().tr()).collect());
            for ((a, b), c) in contiguous.iter().zip(&strided).zip(&mixed_params) {
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff <= 1e-6, "{method:?} step {step}: fused and element-wise differ by {diff}");
                let diff = (a - c).abs().max().double_value(&[]);
                assert!(diff <= 1e-6, "{method:?} step {step}: strided gradients of contiguous parameters differ by {diff}");
            }
        }
        // And the weights moved.
        assert!((&contiguous[0] - &values[0]).abs().max().double_value(&[]) > 1e-3);
    }
}
