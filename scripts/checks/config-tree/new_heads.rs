//! Dumps every study spec's resolved head (scripts/checks/config-tree/README.md).
use gmmseg::experiments::{specs_for, ExperimentProfile, Study};
use gmmseg::train::config::HeadConfig;
fn main() {
    for prof in ["quick", "full"] {
        let p = if prof == "quick" { ExperimentProfile::quick() } else { ExperimentProfile::full() };
        let p = p.check().unwrap();
        for ds in ["synthscapes", "digitscenes"] {
            for study in Study::ALL {
                let Ok(specs) = specs_for(study, &p, ds) else { continue };
                for spec in specs {
                    let cfg = spec.train_config(&p.train_for(ds), ds, 0).unwrap();
                    cfg.clone().check().unwrap();
                    let dim = cfg.net.feature_dim;
                    let head = match &cfg.head {
                        HeadConfig::Softmax => "softmax".to_string(),
                        HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => serde_json::to_string(&g.clone().bind(19, dim)).unwrap(),
                        HeadConfig::DiscGmm(d) => format!("disc {}", d.components),
                    };
                    let mut rest = serde_json::to_value(&cfg).unwrap();
                    rest.as_object_mut().unwrap().remove("head");
                    println!("{prof}|{ds}|{study}|{}|{head}|{rest}", spec.name);
                }
            }
        }
    }
}
