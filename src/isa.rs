//! The instruction-set path the kernels run ([`Isa`]): what this processor can run, the
//! narrower path `RUNNER_ISA` may force for testing, and the one in force, decided once per
//! process. The products of [`crate::real`] and the elementary functions of [`crate::elem`] both
//! dispatch on it; it depends on neither.

/// The instruction-set path the kernels run: the widest the processor has, or a narrower one
/// forced with the environment variable `RUNNER_ISA` (`avx512`, `avx2`, `portable`) for testing.
/// Every path sums each product element in the same order with fused multiply–adds (the portable
/// one with `mul_add`, exact on every target), so the time loop's products give the same bits
/// whichever runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Any processor: the baseline target, fused multiply–add by `mul_add`.
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA).
    Avx512,
}

impl Isa {
    /// The name `RUNNER_ISA` and `manifest.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `RUNNER_ISA` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "portable" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// The widest path this processor can run.
    pub fn native() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            let avx2 = std::arch::is_x86_feature_detected!("avx2");
            if std::arch::is_x86_feature_detected!("avx512f") && avx2 && fma {
                return Isa::Avx512;
            }
            if avx2 && fma {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The path `RUNNER_ISA` asks for (`None` when unset or empty), checked against what this
    /// processor can run; the error says what is wrong and how to fix it.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Some(v) = std::env::var_os("RUNNER_ISA").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let v = v.to_string_lossy();
        let isa = Isa::from_name(&v)
            .ok_or_else(|| format!("RUNNER_ISA={v} is not a kernel path; use avx512, avx2 or portable, or unset it"))?;
        let native = Isa::native();
        if isa > native {
            return Err(format!(
                "RUNNER_ISA={v}: this processor runs {} at most; use a narrower path or unset it",
                native.name()
            ));
        }
        Ok(Some(isa))
    }

    /// The path in force: `RUNNER_ISA` if set and valid (it is checked before any work by
    /// the command line), else the native one. Decided once per process, like the processor
    /// itself: the kernels ask at every step.
    pub fn current() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| Isa::from_env().ok().flatten().unwrap_or_else(Isa::native))
    }
}
