"""The Fast DDS large-data profile is applied unless the user chose otherwise."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from dkt_stack.ros.transport import large_data_profile, use_large_data_profile


def test_profile_is_valid_xml_with_a_large_shm_segment():
    root = ET.parse(large_data_profile()).getroot()
    ns = {"f": "http://www.eprosima.com"}
    seg = root.find(".//f:transport_descriptor[f:type='SHM']/f:segment_size", ns)
    assert int(seg.text) >= 8 * 640 * 480 * 4  # several 640x480 float images fit


def test_respects_user_choices():
    env: dict[str, str] = {}
    assert use_large_data_profile(env) and Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()
    mine = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my.xml"}
    assert not use_large_data_profile(mine) and "FASTDDS_DEFAULT_PROFILES_FILE" not in mine
    cyclone = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert not use_large_data_profile(cyclone) and len(cyclone) == 1
