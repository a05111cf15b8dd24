//! Dumps every study spec's resolved head (scripts/checks/config-tree/README.md).
use gmmseg::experiments::{specs_for, ExperimentProfile, Study};
use gmmseg::gmm::EStep;
use gmmseg::nn::head::GmmHeadConfig;
use gmmseg::train::config::{EmKind, HeadKind};
fn main() {
    for prof in ["quick", "full"] {
        let p = if prof == "quick" { ExperimentProfile::quick() } else { ExperimentProfile::full() };
        let p = p.check().unwrap();
        for ds in ["synthscapes", "digitscenes"] {
            for study in Study::ALL {
                let Ok(specs) = specs_for(study, &p, ds) else { continue };
                for spec in specs {
                    let cfg = spec.train_config(&p.train_for(ds), ds, 0);
                    let (classes, dim, m) = (19, cfg.net.feature_dim, cfg.gmm.components);
                    let with_em = |mut g: GmmHeadConfig| {
                        cfg.gmm.overrides.apply(&mut g);
                        g.online.gmm.em_loops = cfg.gmm.em_loops;
                        if let Some(reg) = cfg.gmm.var_reg { g.online.gmm.var_reg = reg; }
                        if let Some(tau) = cfg.gmm.momentum { g.online.gmm.mean_momentum = tau; g.online.gmm.var_momentum = tau; }
                        if cfg.gmm.em == EmKind::Vanilla { g.online.gmm.e_step = EStep::Vanilla; }
                        g
                    };
                    let head = match cfg.head {
                        HeadKind::Softmax => "softmax".to_string(),
                        HeadKind::Gmmseg => serde_json::to_string(&with_em(GmmHeadConfig::paper(classes, m, dim))).unwrap(),
                        HeadKind::GmmsegRef => serde_json::to_string(&with_em(GmmHeadConfig::reference_code(classes, m, dim))).unwrap(),
                        HeadKind::DiscGmm => format!("disc {m}"),
                    };
                    let mut rest = serde_json::to_value(&cfg).unwrap();
                    rest.as_object_mut().unwrap().remove("gmm");
                    rest.as_object_mut().unwrap().remove("head");
                    println!("{prof}|{ds}|{study}|{}|{head}|{rest}", spec.name);
                }
            }
        }
    }
}
