//! `switchboard bench chart`: a grouped bar chart (SVG, plotters) of a
//! side-by-side comparison: JSON lines `{"group", "series", "value"}` in,
//! one bar per series in each group (medians when a pair repeats).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use plotters::prelude::*;

#[derive(Debug, clap::Args)]
pub(crate) struct ChartArgs {
    /// JSON lines `{"group": "100x20", "series": "switchboard", "value": 1234}`.
    input: PathBuf,
    /// The SVG to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Chart title.
    #[arg(long, default_value = "")]
    title: String,
    /// Label of the value axis.
    #[arg(long, default_value = "")]
    y_label: String,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x2b, 0x6c, 0xb0),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0x66, 0x66),
];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn run(args: ChartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let mut groups: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    let mut values: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        let (Some(g), Some(s), Some(x)) = (
            v["group"].as_str(),
            v["series"].as_str(),
            v["value"].as_f64(),
        ) else {
            anyhow::bail!("line {}: expected {{group, series, value}}", n + 1);
        };
        let index = |list: &mut Vec<String>, name: &str| {
            list.iter().position(|e| e == name).unwrap_or_else(|| {
                list.push(name.to_owned());
                list.len() - 1
            })
        };
        let key = (index(&mut groups, g), index(&mut series, s));
        values.entry(key).or_default().push(x);
    }
    anyhow::ensure!(!values.is_empty(), "no data in {}", args.input.display());
    let bars: BTreeMap<(usize, usize), f64> = values
        .into_iter()
        .map(|(k, mut v)| (k, median(&mut v)))
        .collect();
    let top = bars.values().copied().fold(0.0, f64::max) * 1.15;
    let width = (groups.len() * (series.len() * 60 + 60)).max(640) as u32;

    let root = SVGBackend::new(&args.output, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let slots = groups.len() * (series.len() + 1);
    let mut chart = ChartBuilder::on(&root)
        .caption(&args.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0..slots, 0.0..top)?;
    let per = series.len() + 1;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots)
        .x_label_formatter(&|x| {
            if x % per == series.len() / 2 {
                groups.get(x / per).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(&args.y_label)
        .draw()?;
    for (si, name) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        chart
            .draw_series(
                bars.iter()
                    .filter(|((_, s), _)| *s == si)
                    .map(|((g, _), v)| {
                        let x = g * per + si;
                        Rectangle::new([(x, 0.0), (x + 1, *v)], color.filled())
                    }),
            )?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
